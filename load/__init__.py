"""Load suites (locust users and scenarios) and benchmark scripts."""
