"""The dashboard's pop-up screens: help, trial table, confirm, quit, add, engine crashed."""
