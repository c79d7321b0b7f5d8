"""Reliability tests: damage, hostile input and crashes against real servers and builds."""
