// The other instance of clock-step.test.mjs: a process whose clocks (Next's and the wall clock)
// are both moved by the same amount, so that they agree with each other and with the wall clock
// the test process sees. It records one revalidation and exits.
// argv: Redis URL, JSON of handler options, JSON of the tags, the shift in ms.
const [redisUrl, options, tags, shift] = process.argv.slice(2)
const by = Number(shift)
const realDateNow = Date.now
const realPerfNow = performance.now.bind(performance)
// Before fleetcache is loaded: its clock reads both at every call.
Date.now = () => realDateNow() + by
performance.now = () => realPerfNow() + by

const { close, createUseCacheHandler } = await import('../esm/index.mjs')
const handler = createUseCacheHandler({ redisUrl, ...JSON.parse(options) })
await handler.updateTags(JSON.parse(tags))
await close()
console.log(JSON.stringify({ revalidatedAt: Date.now() }))
