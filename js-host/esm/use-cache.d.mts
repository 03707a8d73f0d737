import handler from '../dist/use-cache.js'
export default handler
