"""Protein secondary-structure tagging: amino-acid sequences in, per-residue structure out."""
