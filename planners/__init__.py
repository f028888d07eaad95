"""vjepa2_ac.planners"""
