"""The wizard's screens: one per step, plus comparison and help. The app imports them; they never
import each other or the app (shared pieces live one level up: base, dialogs, format, messages, state)."""
