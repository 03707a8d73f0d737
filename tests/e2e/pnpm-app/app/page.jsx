export default function Home() {
  return <p id="home">fleetcache, installed by pnpm</p>
}
