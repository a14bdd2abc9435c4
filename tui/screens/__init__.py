"""The wizard's screens: one per step, plus comparison, help and dialogs."""
