"""catalog/sections"""
