"""Sentiment classification: raw text in, negative/positive out.

Data: TensorFlow Datasets' ``imdb_reviews``, aclImdb folders or archives, CSV/TSV
files, and Pang & Lee ``*.pos``/``*.neg`` sentence files (see ``data.py``).
"""
