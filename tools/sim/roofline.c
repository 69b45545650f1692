// SPDX-License-Identifier: MIT
/* roofline.c - iteration time from shape and peaks (see roofline.h). */
#include "roofline.h"

static double max2(double a, double b)
{
	return a > b ? a : b;
}

void sim_work_add(struct sim_work *w, uint32_t q, uint32_t ctx, int sampled)
{
	/* Causal: new token j of q (0-based) sees ctx - q + j + 1 keys. */
	double pairs = (double)q * ctx - (double)q * (q - 1) / 2.0;

	w->new_tokens += q;
	w->sampled += sampled ? 1 : 0;
	if (q == 1) {
		w->decode_seqs++;
		w->decode_pairs += pairs;
		w->decode_kv_tokens += ctx;
	} else {
		w->prefill_pairs += pairs;
		w->prefill_kv_tokens += ctx;
	}
}

double sim_attn_bw(const struct sim_machine *g, uint32_t b)
{
	/* Measured: ~0.5 TB/s at batch 1, ~3.0 TB/s from batch 8 (H100). */
	double f = b >= 8 ? 1.0 : b <= 1 ? 0.0 : (b - 1) / 7.0;

	return g->attn_bw_b1 + (g->attn_bw - g->attn_bw_b1) * f;
}

double sim_roofline(const struct sim_model *m, const struct sim_machine *g,
		    const struct sim_work *w, struct sim_time_parts *parts)
{
	struct sim_model_gpu mg;
	struct sim_time_parts p = {0};
	double fl = g->flops * g->flops_eff, attn_pair_flops, kvb;

	sim_model_per_gpu(m, &mg);
	kvb = (double)mg.kv_bytes_per_token;
	if (w->new_tokens) {
		double flops = (double)w->new_tokens * mg.linear_flops_tok +
			       (double)w->sampled * mg.lm_head_flops;

		p.linear_s =
			max2(flops / fl, (double)mg.weight_bytes / (g->mem_bw * g->mem_bw_eff));
		attn_pair_flops = 4.0 * m->layers * mg.q_heads * m->head_dim;
		if (w->decode_seqs)
			p.attn_decode_s =
				max2(w->decode_pairs * attn_pair_flops / fl,
				     w->decode_kv_tokens * kvb / sim_attn_bw(g, w->decode_seqs));
		p.attn_s = p.attn_decode_s;
		if (w->prefill_pairs > 0)
			p.attn_s += max2(w->prefill_pairs * attn_pair_flops / fl,
					 w->prefill_kv_tokens * kvb / (g->mem_bw * g->mem_bw_eff));
		if (m->tp > 1)
			p.comm_s = m->layers * 2.0 * (double)w->new_tokens * m->hidden *
				   m->elem_size * 2.0 * (m->tp - 1) / m->tp / g->link_bw;
		p.overhead_s = g->iter_overhead_us * 1e-6;
	}
	if (parts)
		*parts = p;
	return p.linear_s + p.attn_s + p.comm_s + p.overhead_s;
}
