"""Helpers shared by the tests (constants, settings, database, HTTP, live servers, events).

Test modules import from here, never from a conftest.py: conftest files only define fixtures.
"""
