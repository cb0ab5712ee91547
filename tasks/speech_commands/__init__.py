"""Keyword spotting: one-second clips of raw audio in, the spoken command out."""
