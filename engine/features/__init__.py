"""Frozen-backbone features and what they alone answer: the feature cache, a candidate's features (one backbone or
a concatenation `a+b`, flipped and cropped views), and the jobs that need nothing more — `compare` (which backbone
fits this data) and `audit` (which labels and files look wrong)."""
