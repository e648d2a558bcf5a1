"""Flowmesh scheduler: cron triggers, delayed runs, event triggers and durable timers."""
