"""lis package."""
