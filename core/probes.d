/* SPDX-License-Identifier: MIT */
/*
 * probes.d: qorb's USDT probes. `dtrace -h` makes probes.h from this file
 * (with semaphores, so a disabled probe costs a test of a global) and
 * `dtrace -G` the object that defines the semaphores.
 *
 * Arguments, in this order where they apply: pool name, claim id, slot id,
 * backend address ("host:port"), reason (an error code, then its name from
 * qorb_err_name(), or a state name).
 */
provider qorb {
	probe claim__start(char *pool, uint64_t claim);
	probe claim__done(char *pool, uint64_t claim, uint64_t slot, char *backend);
	probe claim__failed(char *pool, uint64_t claim, int reason, char *reason_name);
	probe handle__claimed(char *pool, uint64_t claim, uint64_t slot, char *backend);
	probe handle__recycled(char *pool, uint64_t slot, char *backend, int broken);
	probe connect__start(char *pool, uint64_t slot, char *backend);
	probe connect__done(char *pool, uint64_t slot, char *backend);
	probe connect__failed(char *pool, uint64_t slot, char *backend, int reason, char *reason_name);
	probe health__check__start(char *pool, uint64_t slot, char *backend);
	probe health__check__done(char *pool, uint64_t slot, char *backend);
	probe health__check__failed(char *pool, uint64_t slot, char *backend, int reason, char *reason_name);
	probe recycle__start(char *pool, uint64_t slot, char *backend);
	probe recycle__done(char *pool, uint64_t slot, char *backend);
	probe recycle__failed(char *pool, uint64_t slot, char *backend, int reason, char *reason_name);
	probe slot__state__change(char *pool, uint64_t slot, char *backend, char *from, char *to);
	probe slot__set__online(char *pool, char *backend);
	probe slot__set__offline(char *pool, char *backend);
	probe rebalance__start(char *pool);
	probe rebalance__done(char *pool, unsigned int slots);
	probe claim__held__too__long(char *pool, uint64_t slot, char *backend, char *file, int line, uint64_t held_ms);
	/* libqorb-dns (fired without semaphores): the resolver's name, then
	 * the servers to try, the backends found, an ARES_* status, or the
	 * set's size before and after. */
	probe resolve__start(char *name, unsigned int servers);
	probe resolve__done(char *name, unsigned int found);
	probe resolve__failed(char *name, int status, char *status_name);
	probe backends__changed(char *name, unsigned int before, unsigned int after);
};
