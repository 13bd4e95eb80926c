"""The node's finality: the GRANDPA-style voter (`voter`), the record of signed votes
(`store`) and the per-session BLS finality proofs (`bls_proofs`)."""
