"""papibot: the PAPI task framework of decision 3012/QĐ-UBND as tracked chat work.

The rooms, from the bottom: core, then channels and web (the edge), then app (the wiring);
handlers/ and scheduler/ sit beside the edge and import only the core.
"""
