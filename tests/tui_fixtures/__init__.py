"""Fixtures for the TUI tests: a small CSV, a recorded run and fakes for the engine calls."""
