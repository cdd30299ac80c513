"""The billing calendar: the one ``Period`` (calendar or anniversary, in the subscription's
timezone: ``period``) and the part of it one subscription covers (``coverage``).
"""
