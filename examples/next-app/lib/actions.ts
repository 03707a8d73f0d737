'use server'

import { updateTag } from 'next/cache'

// updateTag(tag) for the form of /update-tag: Next allows it in a Server Action only.
export async function updateTagAction(formData: FormData): Promise<void> {
  const tag = formData.get('tag')
  if (typeof tag !== 'string' || !tag || tag.length > 256)
    throw new Error('updateTagAction: missing or invalid tag')
  updateTag(tag)
}
