"""Offer policy: who gets which discount, control groups and discount codes."""
