"""Mr. DETR's streams (their names are the loss-term prefixes and `loss_weights` keys)."""

INSTRUCTIVE = "mr_instructive"  # stream of the instructive route (the release's `group` / `o2m`)
SEP = "mr_sep"  # stream of the route with its own FFN weights (the release's `sep`)
ENCODER_O2M = "mr_encoder"  # the second encoder head's proposals (the release's `enc_outputs_o2m`)
INSTRUCTIVE_DN = "mr_instructive_dn"  # the denoising queries' predictions on the instructive route (DINO)
SEP_DN = "mr_sep_dn"  # ... on the sep route
STREAMS = (INSTRUCTIVE, SEP, ENCODER_O2M, INSTRUCTIVE_DN, SEP_DN)
DENOISING_STREAMS = {INSTRUCTIVE: INSTRUCTIVE_DN, SEP: SEP_DN}
