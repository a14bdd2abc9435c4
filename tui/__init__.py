"""modelwiz front-ends: the command line, the Textual wizard and dashboard."""
