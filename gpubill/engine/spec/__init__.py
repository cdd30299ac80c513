"""The rating spec and its compiler: the catalog's contracts resolved once per subscription
(``subscription``), compiled into ``SubscriptionSpec`` values (``program``, ``compile``), with
each metric's quantity as an exact integer polynomial (``poly``).
"""
