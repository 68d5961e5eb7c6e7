"""The Atlas role: link-tokens, the receiving end of the link channel, available projects."""
