"""The rating context's domain: feedback that readers leave on books."""
