"""The node's finality: the GRANDPA-style voter (`voter`), the record of signed votes (`store`),
the validator sets and the check of justifications (`sets`), the gadget that runs the voter in
the node (`gadget`), the per-session BLS finality proofs (`bls_proofs`, run by `bls_driver`) and
their full check (`verify`, for `cuckoo-node verify-finality`)."""
