"""The HTTP events API (Lago-compatible): a thin shell over ``gpubill.service.events``."""
