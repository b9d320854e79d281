"""Load purchase and user-action files into the raw tables, keeping every rejected row."""
