import { updateTagAction } from '@/lib/actions'

// A form whose Server Action runs updateTag(tag). Without JavaScript it posts as a form (the
// action's id in a hidden field), which is how the end-to-end tests call it. The page reads no
// data, so the render that answers the post regenerates nothing.
export default function UpdateTagPage() {
  return (
    <main>
      <h1>updateTag</h1>
      <form action={updateTagAction}>
        <input name="tag" defaultValue="products" />
        <button type="submit">updateTag</button>
      </form>
    </main>
  )
}
