"""landscapes: see DESIGN.md."""
