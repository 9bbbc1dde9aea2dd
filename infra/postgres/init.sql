-- One database per service: services never share tables.
CREATE DATABASE intake;
CREATE DATABASE triage;
CREATE DATABASE mediation;
CREATE DATABASE followup;
