"""One module per screen; every screen class is registered in gpubill/tui/app.py (SCREENS_BY_NAME)."""
