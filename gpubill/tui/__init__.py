"""The reviewer terminal UI (Textual)."""
