"""models: see DESIGN.md."""
