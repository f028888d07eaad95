"""vjepa2_ac.datasets"""
