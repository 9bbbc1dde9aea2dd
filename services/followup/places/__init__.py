"""Where a case happened: grid code and coordinates, coarse for viewers, exact for its mediators."""
