"""Widgets every screen shares: the filterable table, the breadcrumb, the screen frame, the help."""
