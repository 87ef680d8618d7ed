"""A/B analysis of a canary or split deployment: statistics (``stats``) and the decision built on them."""
