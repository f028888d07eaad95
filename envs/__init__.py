"""vjepa2_ac.envs"""
