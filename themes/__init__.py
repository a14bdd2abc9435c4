"""The themes shipped with modelwiz: *.toml files read by modelwiz.tui.theme (package data)."""
