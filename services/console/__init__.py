"""The web console: server-rendered pages that are a client of the four services' REST APIs."""
