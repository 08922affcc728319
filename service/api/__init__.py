"""The HTTP surface: dependency aliases and one router per resource."""
