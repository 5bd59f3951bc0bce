"""Pictures: the bundled Hangul font, PNG saving, contact sheets, activation grids and
matplotlib figures."""
