"""The fleet tests (altcraft_async.fleet); a package, so that its conftest does not shadow
tests/conftest.py (imported by name from the other tests)."""
