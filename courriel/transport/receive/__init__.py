"""Receiving: receive connector selection and policy, and what is added to a message on the way in."""
