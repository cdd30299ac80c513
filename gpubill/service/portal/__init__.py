"""The customer portal: signed links to one customer's data (``links``), and that data as rows (``view``)."""
