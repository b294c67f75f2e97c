"""Crash, race, disk-full and corruption tests of the storage lifecycle."""
