"""Templated radix tree (Alg. 2) and its construction from plans."""

from helium_lab.trt.tree import Leaf, Node, TemplatedRadixTree

__all__ = ["Leaf", "Node", "TemplatedRadixTree"]
