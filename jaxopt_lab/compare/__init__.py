"""compare: see DESIGN.md."""
