"""Notifications: the Notifier and notification listeners."""
