"""kyzo-dialer: dial a lead list through the KyzoAI placeCall API, at most once per lead."""

__version__ = "0.1.0"
