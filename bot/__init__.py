"""papibot: the PAPI task framework of decision 3012/QĐ-UBND as tracked chat work."""
