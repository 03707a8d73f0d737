export { close } from '../dist/shutdown.js'
