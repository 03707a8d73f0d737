// A deployment adapter that changes nothing: with `adapterPath` set (EXAMPLE_ADAPTER=1, see
// next.config.mjs), Next 16.3.8 and later write prerenders under .next-adapter/server/route-cache/
// instead of server/app and server/pages, the layout `fleetcache seed` must also read
// (tests/e2e/cli.test.mjs).
export default { name: 'fleetcache-example-noop-adapter' }
